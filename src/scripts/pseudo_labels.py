"""Rule pseudo_labels: fold k's finetune model labels the test images; the confident ones are kept."""

from saltnet.config.settings import TrainSettings
from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import pseudo_labels_step

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
predict, rule = snakemake.params.predict, snakemake.params.rule
pseudo_labels_step(
    weights=snakemake.input.model,
    packed_test=snakemake.input.test,
    fold=int(snakemake.wildcards.fold),
    out_labels=snakemake.output.labels,
    out_summary=snakemake.output.summary,
    lock_dir=snakemake.params.lock_dir,
    batch_size=predict["batch_size"],
    tta=predict["tta"],
    shifts=predict["shifts"],
    bf16=snakemake.params.bf16,
    low=rule["low"],
    high=rule["high"],
    share=rule["share"],
    expected=TrainSettings(**snakemake.params.settings),
    gpu_slots=snakemake.params.gpu_slots,
)
