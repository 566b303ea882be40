"""Rules report_overview(_partial): every fold's training curves in one PNG; missing fold stages named."""

import logging

from saltnet.report import overview_figure
from saltnet.runtime.jobs import setup_logging

setup_logging(snakemake.log[0])
missing = overview_figure(snakemake.params.histories, snakemake.output[0])
logging.getLogger("saltnet").info("overview drawn; missing: %s", "; ".join(missing) or "nothing")
