"""asym: multimodal depression recognition from vlogs with ASYM."""
