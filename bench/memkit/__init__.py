"""Test and benchmark kit for the memory governor (DESIGN §11): real memory cgroups and
generated cargo workspaces whose crates have a known rustc peak memory. Standard library only."""
