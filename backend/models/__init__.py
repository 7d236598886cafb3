"""The model hub: the one place that finds, loads and holds the shipped models (weights, the config they
were trained with, the device they run on). Generators, worlds, edits and metrics take models from here;
the hub imports none of them, and training writes the files it reads (`inference`)."""
