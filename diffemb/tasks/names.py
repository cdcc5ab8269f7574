"""First names for the synthetic tasks (pass-key owners, needle characters).

Written for this project. Names that double as common English words (Grace, Hope, Mark,
Will, ...) are left out so that a name occurs in a document only where a builder put it;
every name is a single ``\\w+`` word so that lexical tokenisers keep it whole.
"""

from __future__ import annotations

import numpy as np

FIRST_NAMES: tuple[str, ...] = (
    "Abigail", "Adebayo", "Adriana", "Agnieszka", "Ahmed", "Aiko", "Alejandro", "Alessia",
    "Amara", "Anastasia", "Anders", "Anouk", "Arjun", "Astrid", "Aurelio", "Ayesha",
    "Bartholomew", "Beatriz", "Benedikt", "Bianca", "Bjorn", "Bogdan", "Bronwyn", "Caetano",
    "Callum", "Camila", "Casimir", "Catalina", "Cedric", "Chiamaka", "Cosima", "Dagny",
    "Damian", "Dariusz", "Delphine", "Desmond", "Dimitri", "Dolores", "Dorothea", "Eamon",
    "Ebony", "Edmund", "Eleonora", "Elif", "Emeka", "Enzo", "Esperanza", "Eugenia",
    "Evander", "Fabian", "Farida", "Felipe", "Fenella", "Fiorella", "Florian", "Folasade",
    "Gaspard", "Genevieve", "Giovanni", "Gisela", "Gunnar", "Gwendolyn", "Hamish", "Hannelore",
    "Haruki", "Hedda", "Hamza", "Henrietta", "Hiroshi", "Horatio", "Ignatius", "Ilse",
    "Imogen", "Ingrid", "Isidore", "Ivanka", "Jacinta", "Jaroslav", "Jasmina", "Joaquin",
    "Jovana", "Kasimir", "Katarzyna", "Kenji", "Kiri", "Klaus", "Kwame", "Ladislav",
    "Larissa", "Leocadia", "Leopold", "Liesel", "Lorcan", "Lucinda", "Ludmila", "Lysander",
    "Magnus", "Malika", "Marisol", "Marta", "Mateusz", "Maximilian", "Meinhard", "Mirela",
    "Mordecai", "Nadezhda", "Naledi", "Nikolai", "Ninian", "Oksana", "Olamide", "Ottilie",
    "Ottokar", "Ozren", "Pallavi", "Paloma", "Pernilla", "Philippa", "Priyanka", "Quentin",
    "Radomir", "Rafaela", "Rasmus", "Rosalind", "Rupert", "Sabine", "Saoirse", "Serafina",
    "Siddharth", "Sigrid", "Solveig", "Stanislav", "Sunniva", "Svetlana", "Tadeusz", "Tamsin",
    "Thaddeus", "Theodora", "Tobiah", "Tomasz", "Ulrike", "Undine", "Valentina", "Vasilis",
    "Venkatesh", "Veronika", "Wilhelmina", "Wojciech", "Xavier", "Ximena", "Yaroslava", "Yusuf",
    "Zbigniew", "Zenobia", "Zofia", "Zoltan", "Apolonia", "Benedetta", "Cornelius", "Dragomir",
    "Euphemia", "Fridtjof", "Gottfried", "Hyacinth", "Isadora", "Jerzy", "Kallisto", "Leofric",
    "Mehmet", "Nkechi", "Oddny", "Peregrine", "Ragnhild", "Sebastiano", "Tancredi", "Ursula",
    "Vidar", "Wenceslas", "Yevgenia", "Zuzana", "Anselm", "Brunhilde", "Clementine", "Dmitra",
)  # fmt: skip


def sample_names(rng: np.random.Generator, n: int, exclude: frozenset[str] = frozenset()) -> list[str]:
    """``n`` distinct names in seeded random order, skipping ``exclude``."""
    pool = [name for name in FIRST_NAMES if name not in exclude]
    if n > len(pool):
        raise ValueError(f"need {n} distinct names but only {len(pool)} are available")
    picks = rng.choice(len(pool), size=n, replace=False)
    return [pool[i] for i in picks]
