"""tweetops: tweets to a served engagement model, every step versioned, tracked and reproducible."""

__version__ = "0.1.0"
