"""saltnet.performance.profile: every operator in a group, the groups summing to the step, the table and JSON."""

import json

import torch

from saltnet.performance import profile


def test_operator_names_fall_in_their_groups():
    assert profile.group_of("aten::convolution_backward") == "convolution"
    assert profile.group_of("aten::native_batch_norm_backward") == "batch_norm"
    assert profile.group_of("aten::upsample_bilinear2d_backward") == "resample"
    assert profile.group_of("aten::sort") == "loss sort"
    assert profile.group_of("aten::add_") == "element-wise"
    assert profile.group_of("aten::something_new") == profile.OTHER


def test_tiny_profile_groups_sum_to_the_step_and_are_written(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "profile.json"
        result = profile.main(["--size", "32", "--batch-size", "2", "--steps", "1", "--precision", "fp32", "--nchw",
                               "--config", "aux_resolution=level", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    groups = result["groups"]
    assert abs(sum(groups.values()) - result["step_ms"]) < 1e-6
    assert groups["convolution"] > 0 and groups["batch_norm"] > 0 and groups["loss sort"] > 0
    written = json.loads(out.read_text())
    assert written["size"] == 32 and written["batch_size"] == 2 and written["cpu_model"]
    assert written["memory_format"] == "NCHW" and written["aux_resolution"] == "level"
    table = capsys.readouterr().out
    assert "| convolution |" in table and "img/s under the profiler" in table and "aux_resolution level" in table
