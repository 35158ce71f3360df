"""The Textual screens: ``sleepsync dream`` on a terminal, and ``sleepsync watch``.

One widget per module; the custom messages are in :mod:`.messages`; the
apps (:mod:`.dream_app`, :mod:`.watch_app`) fold server messages into
:class:`~sleepsync.client.roomview.RoomView` and hand the widgets what they
show through reactive attributes. Nothing here parses wire maps or words
sentences: :mod:`~sleepsync.client.roomview` and
:mod:`~sleepsync.client.sentences` do, for every front end alike.
"""
