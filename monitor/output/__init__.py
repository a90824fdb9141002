"""What commwatch writes, one module per kind of output: `records` (the JSON document and JSON
lines, with their schema version), `tables` and `terminal` (for people: tables, verdict lists,
colour), `plugin` (the monitoring-plugin line and perfdata), `audit`/`audit_formats` (the
certificate audit and how it is written), `report`/`report_formats` (the availability report
and how it is written), `spreadsheet` (the CSV writer both share); their JSON Schemas in
`schema/`."""
