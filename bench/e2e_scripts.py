"""What the end-to-end benchmark's episodes say: three shows that talk about four shared topics (small AI models
on your own hardware, home energy, sleep and the working week, how cities move), so extraction has specific
claims to find and clustering has the same subject from several shows to link. Data only; e2e_audio speaks it."""

from __future__ import annotations

from typing import Final

# show slug -> (title, host voice, guest voice, topics in the order the show favours them)
SHOWS: Final[dict[str, tuple[str, str, str, tuple[str, ...]]]] = {
    "signal-path": ("Signal Path", "en-us+m3", "en-us+f3", ("ai", "work", "energy", "cities")),
    "kitchen-table-money": ("Kitchen Table Money", "en-gb+m1", "en-us+f2", ("energy", "cities", "ai", "work")),
    "better-days": ("Better Days", "en-us+f5", "en-us+m6", ("work", "cities", "energy", "ai")),
}

CLIP_INTRO: Final = "Before we start, here is a short recording we have been listening to this week."
CLIP_OUTRO: Final = "That was the recording. Now, on to today's conversation."

# (topic, the host's question, the guest's answer). Each answer carries one or two concrete, checkable claims.
EXCHANGES: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "ai",
        "How small can a useful language model be now?",
        "Smaller than most people think. A model with one billion parameters, compressed to four bits, fits in "
        "about seven hundred megabytes of memory. On a recent laptop it writes around thirty words per second, and "
        "for summarising an email or fixing grammar it is as good as the cloud models were three years ago.",
    ),
    (
        "ai",
        "What does running a model on your own phone cost in battery?",
        "We measured it. One hour of continuous chatting with a small model used about fifteen percent of the "
        "battery on a two year old phone. Short questions barely register. The heavy cost is the first second, "
        "when the model is loaded into memory, so phones that keep it loaded feel much faster.",
    ),
    (
        "ai",
        "Why would a company choose a small model over a big one?",
        "Price and privacy. Answering a million customer questions with a large hosted model costs thousands of "
        "dollars a month. A small model on one rented graphics card does the same routine work for a few hundred "
        "dollars, and the data never leaves the company. The big model is kept for the hard five percent.",
    ),
    (
        "ai",
        "What is distillation, in plain words?",
        "Distillation means training a small model to copy the answers of a large one. The small student sees "
        "millions of examples written by the teacher. Done well, a student one tenth the size keeps about ninety "
        "percent of the teacher's quality on everyday tasks, and it costs under fifty thousand dollars to train.",
    ),
    (
        "ai",
        "Where do small models still fail?",
        "Facts and arithmetic. A small model will confidently invent a date or a number. The fix that works is "
        "grounding: give it the document and ask it to quote from it, then check that the quote really is in the "
        "document. In our tests that simple check removed nine out of ten invented answers.",
    ),
    (
        "ai",
        "Should schools worry about students using these assistants?",
        "The schools we visited stopped banning them and changed the homework instead. Students now explain their "
        "reasoning out loud in class, and written work is graded on the draft history. Teachers told us that "
        "cheating complaints fell by half within one term after the change.",
    ),
    (
        "ai",
        "Is the electricity use of these models a real problem?",
        "For the giant models, yes: one large training run can use as much electricity as a small town does in a "
        "year. For the small models you run yourself, no. A laptop answering questions for an hour uses less "
        "energy than boiling a kettle twice.",
    ),
    (
        "energy",
        "Is a heat pump worth it for an ordinary house?",
        "In most homes, yes. A heat pump moves three to four units of heat for every unit of electricity it uses. "
        "Compared with an old gas boiler, the families we followed cut their heating bill by about a third, as "
        "long as the radiators were large enough to run at low temperatures.",
    ),
    (
        "energy",
        "What about home batteries?",
        "The price of a home battery has fallen by roughly forty percent in three years. A ten kilowatt hour "
        "battery now pays for itself in about seven years if you are on a time of use tariff, because you charge "
        "it at night when power is cheap and use it in the evening peak.",
    ),
    (
        "energy",
        "Do rooftop solar panels still make sense with lower export prices?",
        "They do, but the maths changed. Selling power back to the grid pays very little now, so the value is in "
        "using it yourself. Running the washing machine and the dishwasher at midday, or charging a car, "
        "doubles what a typical system saves you each year.",
    ),
    (
        "energy",
        "What is the cheapest thing a household can do this winter?",
        "Draught proofing. Sealing gaps around doors and windows costs less than two hundred dollars and cuts heat "
        "loss by up to fifteen percent. Turning the thermostat down by one degree saves about ten percent of the "
        "heating bill. Neither needs a builder.",
    ),
    (
        "energy",
        "How do time of use tariffs actually work?",
        "The price of electricity changes through the day. At night it can be a third of the daytime price. If you "
        "move the big loads, the car, the washing, the water heater, to the cheap hours, a typical family saves "
        "around three hundred dollars a year without using any less energy.",
    ),
    (
        "energy",
        "Can the grid cope if everyone switches to heat pumps and electric cars?",
        "Only if demand becomes flexible. Grid operators told us that smart charging, where cars charge when the "
        "wind is blowing, could avoid a fifth of the new power lines otherwise needed by twenty thirty five. The "
        "hardware is ready; the tariffs are what is missing.",
    ),
    (
        "work",
        "What did the four day week trials find?",
        "Across the companies in the largest trial, output held steady while staff worked one day less. Sick days "
        "fell by about two thirds, and nine in ten companies kept the shorter week after the trial ended. The "
        "catch is meetings: every company had to cut them hard to make it work.",
    ),
    (
        "work",
        "How much sleep do people really need to work well?",
        "Most adults need seven to nine hours. After a week of six hour nights, people in lab studies performed as "
        "badly on attention tests as people who had been awake for a full day and night, and the worst part is "
        "that they rated themselves as perfectly fine.",
    ),
    (
        "work",
        "Is the afternoon slump real?",
        "It is, and it is built into the body clock, not caused by lunch. Alertness dips between one and three in "
        "the afternoon. A nap of ten to twenty minutes restores it without grogginess. Longer naps push you into "
        "deep sleep and leave you worse off for half an hour.",
    ),
    (
        "work",
        "Does working from home make people more or less productive?",
        "The best studies find a small gain for focused work, around four percent, and a loss for new hires, who "
        "learn much more slowly away from colleagues. That is why most firms settled on two or three office days "
        "a week, with juniors asked to come in more often.",
    ),
    (
        "work",
        "What is the single best habit for a better working day?",
        "Protect the first two hours. People who kept their first two hours free of email and meetings finished "
        "their most important task on most days, compared with one day in three for everyone else. It costs "
        "nothing and it works in almost any job.",
    ),
    (
        "work",
        "Do screens at night really hurt sleep?",
        "Less than people think. The light matters a little; what matters more is the content. An exciting game or "
        "a stressful email at eleven at night delays sleep by about twenty minutes. A dull book on a dim tablet "
        "barely changes anything.",
    ),
    (
        "work",
        "Are AI assistants changing how office work is done?",
        "In the call centres we studied, a writing assistant raised the number of problems solved per hour by "
        "fourteen percent, and the gain was largest for the newest staff, whose results caught up with "
        "experienced colleagues within two months instead of six.",
    ),
    (
        "cities",
        "Are electric bikes replacing car trips?",
        "In the cities we looked at, about a third of electric bike trips replaced a car journey. The average "
        "trip is around eight kilometres, longer than on a normal bike, and owners ride about three times as "
        "often. Secure parking at home is the main thing that stops people buying one.",
    ),
    (
        "cities",
        "Did congestion charging work where it was tried?",
        "It did. In the city that introduced a daily charge for driving into the centre, traffic fell by about "
        "twenty percent in the first year and buses ran eight percent faster. Shops in the zone reported no drop "
        "in sales, which was the main fear before the vote.",
    ),
    (
        "cities",
        "Why are some cities making buses free?",
        "To win drivers over, but the results are mixed. Free buses raised passenger numbers by a quarter, yet most "
        "new riders had walked or cycled before. Making buses more frequent moved more people out of cars than "
        "making them free, for the same money.",
    ),
    (
        "cities",
        "How much does a commute cost people in health?",
        "Every extra ten minutes of driving to work was linked with less time for exercise and sleep. People who "
        "switched from driving to cycling lost on average one kilogram in their first year without any other "
        "change, and reported less stress arriving at work.",
    ),
    (
        "cities",
        "What makes a street feel safe to walk?",
        "Speed. When the limit on residential streets dropped from fifty to thirty kilometres per hour, serious "
        "injuries fell by about a third. Wider pavements and trees help too, but slower cars are what parents "
        "mention first when deciding whether children can walk to school.",
    ),
    (
        "cities",
        "Are electric buses ready for everyday service?",
        "Yes. The city fleets we followed ran electric buses for about two hundred and fifty kilometres a day on "
        "one charge, even in winter. They cost more to buy but around half as much to run, so over twelve years "
        "they come out cheaper than diesel.",
    ),
    (
        "cities",
        "Will self driving taxis change cities soon?",
        "Slowly. The services running today cover a few districts in good weather. Their safety record per "
        "kilometre is better than human drivers in those areas, but each car still costs several times an "
        "ordinary taxi, so they will stay a niche for at least five more years.",
    ),
    (
        "energy",
        "Is an induction hob worth switching to?",
        "For cooking and for your lungs, yes. Gas hobs raise nitrogen dioxide indoors above outdoor safety limits "
        "within an hour of cooking. Induction is about twice as efficient and boils water faster. A plug in single "
        "ring costs under one hundred dollars if a full hob is out of reach.",
    ),
    (
        "work",
        "Does exercise during the work day help?",
        "Ten minutes of brisk walking improves attention for about an hour afterwards. Companies that allowed a "
        "walk at lunchtime saw fewer afternoon errors. You do not need a gym: stairs and a walk around the block "
        "are enough to get most of the benefit.",
    ),
    (
        "ai",
        "Can small models understand speech as well?",
        "Surprisingly well. A speech recognition model of under forty million parameters transcribes clear "
        "English with about five percent of words wrong, on an ordinary laptop processor, faster than real time. "
        "Accents and crosstalk are still where it stumbles.",
    ),
)
