"""fumewatch alerts: windowed exceedance detection and graduated notices."""
