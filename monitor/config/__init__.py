"""The inventory: loaded and validated once, with file:line:column for every fault, into a frozen
model (sites, links, checks, redundancy, alerts, maintenance). Imports core and the probe
registry (to read each kind's options)."""
