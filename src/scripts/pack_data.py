"""Rule pack_data: check the competition layout once and pack images and masks into arrays."""

from saltnet.runtime.jobs import setup_logging
from saltnet.steps import pack_step

setup_logging(snakemake.log[0])
pack_step(
    data_dir=snakemake.params.data_dir,
    image_size=snakemake.params.image_size,
    out_train=snakemake.output.train,
    out_test=snakemake.output.test,
)
