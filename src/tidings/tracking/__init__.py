"""Email tracking: signed open pixels and click links, wrapping an email's links, ESP webhooks,
and telling a person's open or click from a machine's.

Every open, click and ESP event becomes an ordinary event of the Segment Email spec in the
events log, through the collect context, so the pipeline and the profiles see it like any other.
:mod:`tidings.tracking.machine` tells Apple Mail Privacy Protection prefetches and security
scanners from people, from the request's user agent, address and timing (pure: no HTTP, no
database).
"""
