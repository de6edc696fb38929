"""ab-harness: prove that A/B OTA updates roll back correctly."""
