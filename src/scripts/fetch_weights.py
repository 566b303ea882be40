"""Rule fetch_encoder_weights: download an encoder's ImageNet weights once and save its state dict."""

import socket

from saltnet.models.weights import fetch_imagenet_weights
from saltnet.runtime.jobs import setup_logging

socket.setdefaulttimeout(120)  # a stalled connection fails instead of hanging the login node's run
setup_logging(snakemake.log[0])
fetch_imagenet_weights(snakemake.wildcards.encoder, snakemake.output[0])
