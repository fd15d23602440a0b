"""Transfer learning: reusing trained networks (cutting, heads, freezing, imported weights)."""
