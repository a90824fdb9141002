"""What runs: the runner (one attempt of one check), the scheduler, the pure state engine, and
the continuous monitor that joins them to the sinks."""
