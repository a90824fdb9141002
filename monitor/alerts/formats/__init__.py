"""Notifier formats: how each kind of receiver wants an alert `Message` said.

One module per format, each with a `render(message) -> Rendered` (content type and body, stored
in the outbox and sent as is), listed by kind in `registry.FORMATS`. Delivery (HTTP, signing,
judging the answer) is the same for every format: `monitor.alerts.delivery`.

A new format is one module here, one line in `registry.FORMATS`, and its name in
`monitor.config.alerts.NotifierKind` (the configuration layer checks `kind:` against it before
anything here is loaded; a test holds the two lists equal).
"""
