"""Email engagement: opens, clicks and who (a person or a machine) made them.

:mod:`tidings.tracking.machine` tells a person's open or click from a machine's (Apple Mail
Privacy Protection prefetch, security scanners), from the request's user agent, address and
timing. Pure: no HTTP, no database.
"""
