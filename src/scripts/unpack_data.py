"""Rule unpack_data: a Kaggle download (the zip, or its folder with train.zip and test.zip) unpacked in results/data."""

from saltnet.data.kaggle import unpack_kaggle
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
unpack_kaggle(snakemake.params.source, snakemake.output[0])
