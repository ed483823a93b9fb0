"""Tracking: telling people's opens from machines' fetches (signed links, webhooks and reports
come with the tracking issue)."""
