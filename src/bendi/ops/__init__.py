"""Operating bendi on a server: backup and restore, on-disk format versions and migrations, the system service, offline bundles."""
