"""Field feedback: outcomes of visited leads in (`read`, `store`), the hotlist and suppression out."""
