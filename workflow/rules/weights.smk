# ImageNet encoder weights, downloaded once where snakemake runs (a local rule: on a cluster, the
# login node, since GPU nodes often have no internet). With config encoder_weights: imagenet,
# train_fold reads this file instead of downloading in every job.
rule fetch_encoder_weights:
    output:
        "resources/weights/{encoder}.pth",
    log:
        "logs/fetch_encoder_weights/{encoder}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../src/scripts/fetch_weights.py"
