"""The Nix-specific layer over castore: PathInfo, NAR, and the PathInfoService."""
