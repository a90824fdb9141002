"""The dashboard's screens: the dashboard itself and the help over it."""
