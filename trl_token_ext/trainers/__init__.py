"""Token-reward subclasses of TRL's online trainers."""
