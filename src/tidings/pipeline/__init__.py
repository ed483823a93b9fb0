"""The pipeline: consumers that apply the events log, in order, with a durable cursor."""
