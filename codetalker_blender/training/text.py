"""Phonetically varied English sentences from a small grammar (our own word lists).

Words were picked to cover the English phone set often, with many bilabials
(/p b m/), labiodentals (/f v/), rounded vowels and open vowels, since those
shape the lips most.
"""

from __future__ import annotations

import numpy as np

NAMES = ["Mabel", "Pablo", "Bob", "Fiona", "Victor", "Martha", "Owen", "Judy", "Ruth", "Theo", "Zoe", "Gus",
         "Maggie", "Ivan", "Paula", "Shaun", "Wanda", "Hugo", "Amy", "Boris"]
ADJECTIVES = ["big", "blue", "warm", "old", "happy", "rough", "smooth", "brave", "pale", "purple", "quiet",
              "famous", "heavy", "thin", "yellow", "frozen", "open", "modern", "broken", "shiny", "cheap", "wooden",
              "gloomy", "vivid", "muddy", "polite", "humble", "awful", "giant", "tiny"]
NOUNS = ["boat", "map", "fox", "mouth", "fish", "pool", "van", "pie", "moon", "bottle", "window", "garden",
         "farmer", "puppy", "bubble", "fever", "voice", "museum", "apple", "shoe", "judge", "thumb", "wave",
         "photo", "mirror", "ball", "monkey", "pepper", "beef", "oven", "umbrella", "ferry", "bamboo", "wolf",
         "whale", "movie", "coffee", "rope", "harbor", "feather", "vase", "plum", "cave", "father", "mother"]
VERBS_PAST = ["bought", "moved", "pushed", "found", "painted", "opened", "dropped", "washed", "brought", "fixed",
              "borrowed", "watched", "wrapped", "shaped", "grabbed", "carried", "loved", "kept", "ruined", "measured",
              "polished", "followed", "touched", "buried", "chose", "threw", "lifted", "stopped"]
PLACES = ["by the harbor", "in the garden", "under the bridge", "at the museum", "near the pool",
          "on the ferry", "behind the van", "above the oven", "beyond the wall", "over the bay",
          "from the cave", "in the morning", "before the movie", "after the party", "at home"]
ADVERBS = ["slowly", "proudly", "very fast", "without a word", "twice", "by mistake", "with both hands",
           "for a moment", "every Thursday", "all of a sudden", "quite badly", "perfectly"]
OPENERS = ["Maybe", "Of course", "Yesterday", "Oh well", "By the way", "Believe me", "Frankly", "Look",
           "Fortunately", "Somehow", "Well", "So"]
QUESTIONS = ["Why did {n} move the {a} {o}?", "Who found the {a} {o} {p}?", "Was the {o} really {a}?",
             "How many {a} {o}s do you have?", "Would you buy a {a} {o} from {n}?",
             "Have you seen my {a} {o}?", "Did {n} {v_base} the {o}?"]
STATEMENTS = ["The {a} {o} {v} the {o2} {p}.", "{n} {v} a {a} {o} {adv}.", "{O}, {n} {v} the {a} {o2}.",
              "My {o} is {a}, but your {o2} is {a2}.", "We {v} the {a} {o} and the {a2} {o2} {p}.",
              "Please pass me the {a} {o}.", "{n} and {n2} {v} the {o} {adv}.",
              "Five {a} {o}s were found {p}.", "I think the {o} {v} itself {adv}.",
              "Move the {o} away from the {a} {o2}.", "There were {num} {o}s {p}.",
              "Every {o} {v} a {a2} {o2} {p}."]
NUMBERS = ["two", "three", "four", "five", "seven", "nine", "twelve", "fifty", "a hundred", "many", "forty-four"]
BASE = {"bought": "buy", "moved": "move", "pushed": "push", "found": "find", "painted": "paint", "opened": "open",
        "dropped": "drop", "washed": "wash", "brought": "bring", "fixed": "fix", "borrowed": "borrow",
        "watched": "watch", "wrapped": "wrap", "shaped": "shape", "grabbed": "grab", "carried": "carry",
        "loved": "love", "kept": "keep", "ruined": "ruin", "measured": "measure", "polished": "polish",
        "followed": "follow", "touched": "touch", "buried": "bury", "chose": "choose", "threw": "throw",
        "lifted": "lift", "stopped": "stop"}


def sentence(rng: np.random.Generator) -> str:
    def pick(words):
        return words[int(rng.integers(len(words)))]

    v = pick(VERBS_PAST)
    fill = dict(a=pick(ADJECTIVES), a2=pick(ADJECTIVES), o=pick(NOUNS), o2=pick(NOUNS), n=pick(NAMES),
                n2=pick(NAMES), v=v, v_base=BASE[v], p=pick(PLACES), adv=pick(ADVERBS), O=pick(OPENERS),
                num=pick(NUMBERS))
    template = pick(QUESTIONS) if rng.random() < 0.2 else pick(STATEMENTS)
    text = template.format(**fill)
    return text[0].upper() + text[1:]


def utterance(rng: np.random.Generator, max_sentences: int = 3) -> str:
    """One to ``max_sentences`` sentences."""
    k = 1 + int(rng.integers(max_sentences))
    return " ".join(sentence(rng) for _ in range(k))
