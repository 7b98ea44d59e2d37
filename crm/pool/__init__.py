"""The public customer pool: claim, release, allocation, and the recycling rules' settings."""
