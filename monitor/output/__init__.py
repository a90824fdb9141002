"""What commwatch writes: result records (JSON, JSON lines), tables for people, the
monitoring-plugin line, the certificate audit, the availability report, and their JSON Schemas."""
