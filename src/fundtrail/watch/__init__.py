"""Watch lists, the follow loop over nodes and export folders, alerts and their delivery."""
