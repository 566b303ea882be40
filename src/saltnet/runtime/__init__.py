"""What a job runs on: device leases, precision, determinism, job logging and threads, atomic writes."""
