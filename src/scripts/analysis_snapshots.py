"""Rule analysis_snapshots: the finetune's final model against averages of its last snapshots."""

from saltnet.runtime.jobs import set_threads, setup_logging
from saltnet.steps import snapshot_analysis_step

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
p = snakemake.params
snapshot_analysis_step(snakemake.input.train, snakemake.input.folds, dict(zip(p.folds, snakemake.input.oof)),
                       "finetune", p.ks, p.lock_dir, snakemake.output[0], p.gpu_slots)
