"""The bottom layer: the values that cross module boundaries (results, verdicts, events), the
option and duration rules, failure classification, and text made safe for people. Imports no
other layer."""
