"""The dashboard's widgets, one per module: the check table, the summary bar, the detail pane
(and its scrolling frame), the event log and the filter box. They show what the screen gives
them and post messages about what the user did there; the screen decides what follows.

Colours come from component classes styled in dashboard.tcss; the text alone (symbols, words)
already says everything, so colour only repeats it.
"""
