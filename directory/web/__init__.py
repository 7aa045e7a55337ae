"""Web layer: blueprints for the public pages and the JSON API, and error handling."""
