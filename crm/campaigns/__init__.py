"""Campaign figures: leads, conversion, revenue and ROI per campaign and channel (issue 7)."""
