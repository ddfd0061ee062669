"""nn.Modules, one file per paper architecture; no training logic here."""
