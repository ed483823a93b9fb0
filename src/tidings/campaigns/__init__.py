"""Campaigns: emails tidings sends itself over SMTP, the replies they get, and their report."""
