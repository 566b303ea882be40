"""Rule make_demo_data: write the synthetic demo data set in the competition layout."""

from saltnet.data.demo import make_demo_data
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
make_demo_data(snakemake.output[0], **snakemake.params.demo)
