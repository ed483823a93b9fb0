"""Email tracking: signed open pixels and click links, wrapping an email's links, ESP webhooks.

Every open, click and ESP event becomes an ordinary event of the Segment Email spec in the
events log, through the collect context, so the pipeline and the profiles see it like any other.
"""
