"""pfrps-bng: a PPPoE BNG on pfrps workers, and the scaled PPPoE client that tests it."""
