"""The demo a new user sees after ``make run``: product pictures served by tidings itself (so
the demo needs no internet), the seeded shop, and a sample email with open-time content."""
