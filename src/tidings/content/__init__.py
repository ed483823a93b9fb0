"""Open-time content: what an email shows when it is opened.

An email holds an image tag and a link pointing at tidings; when the recipient opens it, a
*content block* picks an *app* (recently viewed products, the cart, the last order,
recommendations, a countdown, a personalised headline), renders it for that person at that
moment and remembers what it showed, so that a click leads to exactly that.

:mod:`tidings.content.render` is the rendering itself: a pure library over a profile view, a
catalog and an image source, with no HTTP and no database.
"""
