"""Node and cluster lifecycle: blue/green migration, sequential upgrades, access mode moves."""
