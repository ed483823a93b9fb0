"""The catalog: products imported from a feed or learned from events, and their images.

- :mod:`.feed` reads CSV and JSON product feeds (any common column names, Google Merchant's
  included) into records, reporting bad rows with their line, field and reason;
- :mod:`.store` keeps the ``products`` table, where every field remembers whether the feed or
  an event set it (the feed wins), and counts views for popularity;
- :mod:`.service` is the context's API for the others (import, read, edit, popular products,
  cached for open-time renders); :mod:`.router` and :mod:`.cli` expose it;
- :mod:`.images` fetches product images safely, and caches them resized on disk and in memory.
"""
