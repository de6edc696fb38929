"""Labs: whether a board's lab is there, labgrid places, and the virtual board rig."""
