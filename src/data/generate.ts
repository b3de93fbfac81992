import { Rng } from '../util/rng.js';

/**
 * The quickstart corpus: short children's stories from a hand-written grammar
 * with a few hundred words of vocabulary. Regular enough that a tiny
 * character-level GPT learns to write recognisable English from it in a couple
 * of minutes on a CPU, varied enough that it is not just memorising sentences.
 *
 * The output is a pure function of the options: same seed and size, same bytes
 * (tests/corpus.test.ts checks the committed data/quickstart.txt against it).
 * Changing anything here changes the corpus: regenerate the file in the same
 * commit (see src/data/generate-cli.ts).
 */

export interface QuickstartOptions {
  /** RNG seed (default 'quickstart-v1'). */
  seed?: number | string;
  /** Stop after the first story that takes the text to at least this many characters (default 450,000). */
  targetChars?: number;
}

export const QUICKSTART_DEFAULTS = { seed: 'quickstart-v1', targetChars: 450_000 } as const;

type Gender = 'm' | 'f';
interface Character {
  name: string;
  kind: string;
  adj: string;
  g: Gender;
}

const BOY_NAMES = ['Tom', 'Ben', 'Sam', 'Max', 'Leo', 'Jack', 'Finn', 'Toby', 'Pip', 'Oscar', 'Milo', 'Ted', 'Jim', 'Dan', 'Bob', 'Ned', 'Otto', 'Rex'];
const GIRL_NAMES = ['Lily', 'Mia', 'Anna', 'Rosa', 'Emma', 'Lucy', 'Ella', 'Zoe', 'Ruby', 'Daisy', 'Sue', 'Kate', 'Molly', 'Nell', 'Ivy', 'Jane', 'Amy', 'Tess'];
const ANIMALS = ['fox', 'bear', 'rabbit', 'cat', 'dog', 'mouse', 'duck', 'owl', 'frog', 'pig', 'lion', 'squirrel', 'turtle', 'goat', 'otter', 'deer', 'sheep', 'puppy', 'kitten', 'hedgehog', 'badger', 'mole'];
const PEOPLE = ['girl', 'boy'];
const CHAR_ADJS = ['little', 'small', 'big', 'happy', 'brave', 'kind', 'shy', 'clever', 'sleepy', 'curious', 'silly', 'young', 'funny', 'friendly', 'busy', 'gentle', 'tiny', 'proud'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'pink', 'purple', 'orange', 'brown', 'white', 'black', 'golden', 'silver'];
const LOOKS = [...COLORS, 'shiny', 'little', 'big', 'round', 'old', 'new', 'tiny', 'striped', 'spotty'];
const THINGS = ['ball', 'kite', 'hat', 'box', 'book', 'toy', 'boat', 'drum', 'shell', 'stone', 'key', 'cup', 'bell', 'sock', 'map', 'coin', 'feather', 'scarf', 'car', 'doll', 'basket', 'bucket', 'spoon', 'ribbon', 'button', 'whistle'];
const FOODS = ['apple', 'pear', 'cake', 'cookie', 'carrot', 'berry', 'plum', 'pie', 'sandwich', 'nut', 'banana', 'cherry', 'muffin'];
/** Places to go to, each with the phrase for being there. */
const PLACES: readonly { to: string; at: string }[] = [
  { to: 'the river', at: 'by the river' },
  { to: 'the park', at: 'in the park' },
  { to: 'the forest', at: 'in the forest' },
  { to: 'the garden', at: 'in the garden' },
  { to: 'the hill', at: 'on the hill' },
  { to: 'the lake', at: 'by the lake' },
  { to: 'the farm', at: 'on the farm' },
  { to: 'the beach', at: 'on the beach' },
  { to: 'the pond', at: 'near the pond' },
  { to: 'the field', at: 'in the field' },
  { to: 'the village', at: 'in the village' },
  { to: 'the woods', at: 'in the woods' },
  { to: 'the meadow', at: 'in the meadow' },
  { to: 'the playground', at: 'at the playground' },
  { to: 'the shop', at: 'at the shop' },
  { to: 'the school', at: 'at the school' },
];
/** Things something can be near, under or behind. */
const SPOTS = ['the old tree', 'the big rock', 'the bridge', 'the fence', 'the barn', 'the bench', 'the gate', 'the bush', 'the log', 'the shed', 'the wall', 'the swing', 'the flowers', 'the sofa', 'the bed', 'the table'];
const PREPS = ['near', 'by', 'under', 'behind', 'next to', 'beside'];
const TIMES = ['One sunny morning', 'One rainy day', 'One cold morning', 'One warm afternoon', 'One windy day', 'One bright morning', 'One day', 'In the morning', 'After lunch', 'On a snowy day', 'Early one morning', 'Last summer', 'One evening'];
const FEELINGS_GOOD = ['happy', 'glad', 'excited', 'proud', 'pleased'];
const FEELINGS_BAD = ['sad', 'scared', 'tired', 'hungry', 'lonely', 'cross', 'worried', 'upset'];
const FAMILY = ['mom', 'dad', 'sister', 'brother', 'grandma', 'grandpa', 'aunt', 'uncle'];
const GAMES = ['tag', 'hide and seek', 'catch', 'a game', 'with blocks', 'in the sand', 'in the mud', 'with a ball', 'on the swings'];
const WEATHER_BAD = ['it started to rain', 'the wind began to blow', 'it began to snow', 'dark clouds came over the hill', 'the sky turned grey'];
const SOUNDS = ['a loud noise', 'a strange sound', 'a soft sound', 'a funny noise', 'a little cry', 'a bump', 'a scratch'];
const SOUND_WHERE = ['outside', 'under the bed', 'in the kitchen', 'by the door', 'on the roof', 'behind the window', 'in the garden'];
const ACTIVITIES = [
  { base: 'sing a song', past: 'sang a song' },
  { base: 'read a book', past: 'read a book' },
  { base: 'draw a picture', past: 'drew a picture' },
  { base: 'build a house', past: 'built a house' },
  { base: 'plant a seed', past: 'planted a seed' },
  { base: 'fly a kite', past: 'flew a kite' },
  { base: 'bake a cake', past: 'baked a cake' },
  { base: 'go for a walk', past: 'went for a walk' },
  { base: 'swim in the lake', past: 'swam in the lake' },
  { base: 'climb a tree', past: 'climbed a tree' },
  { base: 'pick flowers', past: 'picked flowers' },
  { base: 'look at the stars', past: 'looked at the stars' },
  { base: 'make a sand castle', past: 'made a sand castle' },
  { base: 'paint the fence', past: 'painted the fence' },
  { base: 'ride a bike', past: 'rode a bike' },
  { base: 'dance', past: 'danced' },
  { base: 'jump in the puddles', past: 'jumped in the puddles' },
  { base: 'play a game', past: 'played a game' },
];
const MAKES = ['a cake', 'a hat', 'a boat', 'a kite', 'a card', 'a pie', 'a nest', 'a house', 'a necklace', 'a sandwich', 'a picture', 'a crown'];
const MAKE_STUFF = ['paper and glue', 'sticks and string', 'flour and eggs', 'leaves and mud', 'beads and thread', 'bread and jam', 'paint and a brush', 'flowers and grass'];

function an(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

class Story {
  private sentences: string[] = [];
  constructor(readonly rng: Rng) {}

  pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)];
  }
  chance(p: number): boolean {
    return this.rng.next() < p;
  }
  say(...parts: string[]): void {
    for (const s of parts) this.sentences.push(cap(s));
  }
  text(): string {
    return this.sentences.join(' ');
  }

  character(avoid?: Character): Character {
    for (;;) {
      const g: Gender = this.chance(0.5) ? 'm' : 'f';
      const name = this.pick(g === 'm' ? BOY_NAMES : GIRL_NAMES);
      const kind = this.chance(0.15) ? (g === 'm' ? 'boy' : 'girl') : this.pick(ANIMALS);
      if (avoid && (avoid.name === name || avoid.kind === kind)) continue;
      if (PEOPLE.includes(kind) && kind !== (g === 'm' ? 'boy' : 'girl')) continue;
      return { name, kind, g, adj: this.pick(CHAR_ADJS) };
    }
  }
}

const he = (c: Character): string => (c.g === 'm' ? 'he' : 'she');
const him = (c: Character): string => (c.g === 'm' ? 'him' : 'her');
const his = (c: Character): string => (c.g === 'm' ? 'his' : 'her');

/** How a story names its hero after the introduction: by name mostly, sometimes "the fox" or "he". */
function ref(s: Story, c: Character): string {
  const r = s.rng.next();
  return r < 0.6 ? c.name : r < 0.8 ? `the ${c.kind}` : he(c);
}

/** A location phrase: "in the park" or "behind the old tree". */
function where(s: Story): string {
  return s.chance(0.5) ? s.pick(PLACES).at : `${s.pick(PREPS)} ${s.pick(SPOTS)}`;
}

function intro(s: Story, c: Character): void {
  const place = s.pick(PLACES);
  const spot = `${s.pick(PREPS)} ${s.pick(SPOTS)}`;
  const who = `${an(c.adj)} ${c.kind}`;
  switch (s.pick([0, 1, 2, 3, 4, 5])) {
    case 0:
      s.say(`once upon a time, there was ${who} named ${c.name}.`);
      break;
    case 1:
      s.say(`there was once ${who} called ${c.name}.`);
      break;
    case 2:
      s.say(`${c.name} was ${who} who lived ${s.chance(0.5) ? place.at : spot}.`);
      break;
    case 3:
      s.say(`${s.pick(TIMES)}, ${c.name} the ${c.kind} went to ${place.to}.`);
      break;
    case 4:
      s.say(`${c.name} the ${c.kind} liked to play ${place.at}.`);
      break;
    default:
      s.say(`${c.name} was ${who}. ${cap(he(c))} lived ${place.at} with ${his(c)} ${s.pick(FAMILY)}.`);
  }
}

function meet(s: Story, hero: Character, friend: Character): void {
  switch (s.pick([0, 1, 2, 3])) {
    case 0:
      s.say(`then ${hero.name} met ${an(friend.adj)} ${friend.kind} named ${friend.name}.`);
      break;
    case 1:
      s.say(`soon ${friend.name} the ${friend.kind} came by.`);
      break;
    case 2:
      s.say(`just then, ${an(friend.adj)} ${friend.kind} called ${friend.name} walked up to ${him(hero)}.`);
      break;
    default:
      s.say(`${hero.name} saw ${his(hero)} friend ${friend.name} the ${friend.kind}.`);
  }
}

function ending(s: Story, hero: Character, friend?: Character): void {
  const opts: string[] = [
    `${hero.name} was very ${s.pick(FEELINGS_GOOD)}.`,
    `that night, ${hero.name} went to bed with a big smile.`,
    `it was the best day ever.`,
    `${he(hero)} smiled all the way home.`,
  ];
  if (friend) {
    opts.push(
      `from that day on, ${hero.name} and ${friend.name} were best friends.`,
      `${hero.name} and ${friend.name} were good friends.`,
      `they played together until the sun went down.`,
      `then they went home for dinner.`,
    );
  }
  s.say(s.pick(opts));
  if (s.chance(0.15)) s.say('the end.');
}

// ---- plots -----------------------------------------------------------------

function plotFound(s: Story, hero: Character): void {
  const thing = s.pick(THINGS);
  const color = s.pick(LOOKS);
  intro(s, hero);
  s.say(`${ref(s, hero)} found ${an(color)} ${thing} ${where(s)}.`);
  s.say(
    s.pick([
      `${he(hero)} picked it up and looked at it.`,
      `${he(hero)} had never seen such a ${thing} before.`,
      `it was ${s.pick(['dirty', 'wet', 'a bit broken', 'very old', 'full of sand'])}, but ${hero.name} liked it.`,
      `it was ${s.pick(['very pretty', 'bright and clean', 'just the right size', 'light as a feather'])}.`,
    ]),
  );
  s.say(`"What a ${s.pick(['nice', 'pretty', 'funny', 'good', 'lovely'])} ${thing}!" said ${hero.name}.`);
  if (s.chance(0.5)) {
    const fam = s.pick(FAMILY);
    s.say(`${he(hero)} took the ${thing} home and showed it to ${his(hero)} ${fam}.`);
    s.say(`"Where did you find it?" asked ${his(hero)} ${fam}.`, `"${cap(where(s))}," said ${hero.name}.`);
    ending(s, hero);
  } else {
    const friend = s.character(hero);
    meet(s, hero, friend);
    s.say(`"Look at my ${thing}!" said ${hero.name}.`, `"Can I play with it too?" asked ${friend.name}.`);
    s.say(
      s.chance(0.7)
        ? `"Yes, let's share it," said ${hero.name}.`
        : `${hero.name} did not want to share. But then ${he(hero)} saw that ${friend.name} was ${s.pick(FEELINGS_BAD)}, so ${he(hero)} gave ${him(friend)} the ${thing}.`,
    );
    ending(s, hero, friend);
  }
}

function plotLost(s: Story, hero: Character): void {
  const thing = s.pick(THINGS);
  const color = s.pick(COLORS);
  intro(s, hero);
  s.say(`${hero.name} had ${an(color)} ${thing}.`, `${he(hero)} loved it very much.`);
  s.say(`${s.pick(['one day', 'but one day', 'then one day', 'one morning'])}, ${he(hero)} lost ${his(hero)} ${thing}.`);
  s.say(`${hero.name} was very ${s.pick(['sad', 'upset', 'worried'])}.`);
  s.say(`${he(hero)} looked ${where(s)}, but it was not there.`);
  const friend = s.character(hero);
  meet(s, hero, friend);
  s.say(`"Why are you sad?" asked ${friend.name}.`, `"I lost my ${thing}," said ${hero.name}.`);
  s.say(`"Don't cry. I will help you find it," said ${friend.name}.`);
  s.say(`they looked ${where(s)} and ${where(s)}.`);
  s.say(
    s.pick([
      `at last, ${friend.name} found the ${thing} ${s.pick(PREPS)} a big ${s.pick(['tree', 'rock', 'bush', 'log', 'box'])}.`,
      `there it was, ${where(s)}!`,
      `then ${hero.name} saw something ${color}. It was the ${thing}!`,
    ]),
  );
  s.say(`"Thank you, ${friend.name}!" said ${hero.name}.`);
  ending(s, hero, friend);
}

function plotPlay(s: Story, hero: Character): void {
  intro(s, hero);
  const friend = s.character(hero);
  meet(s, hero, friend);
  s.say(`"Do you want to play?" asked ${hero.name}.`, `"${s.pick(['Yes', 'Yes, please', 'Oh yes', 'OK'])}!" said ${friend.name}.`);
  s.say(`they played ${s.pick(GAMES)} ${where(s)}.`);
  if (s.chance(0.5)) {
    s.say(`then ${s.pick(WEATHER_BAD)}.`);
    s.say(
      s.pick([
        `they ran to the ${s.pick(['barn', 'house', 'old tree', 'shop', 'school'])} and waited.`,
        `${friend.name} had a big ${s.pick(COLORS)} umbrella, so they stayed dry.`,
        `they did not mind. They laughed and played some more.`,
      ]),
    );
  } else {
    const act = s.pick(ACTIVITIES);
    s.say(`after that, they wanted to ${act.base}.`, `so they ${act.past} together.`);
  }
  ending(s, hero, friend);
}

function plotMake(s: Story, hero: Character): void {
  const thing = s.pick(MAKES);
  intro(s, hero);
  const friend = s.character(hero);
  s.say(`${hero.name} wanted to make ${thing} for ${his(hero)} friend ${friend.name}.`);
  s.say(`${he(hero)} got some ${s.pick(MAKE_STUFF)}.`);
  s.say(`${he(hero)} worked ${s.pick(['all morning', 'all day', 'very hard', 'for a long time', 'slowly and carefully'])}.`);
  if (s.chance(0.4)) {
    s.say(`but the first one was not very good.`, `${hero.name} did not give up. ${cap(he(hero))} tried again.`);
  }
  s.say(`at last, ${thing.replace(/^an? /, 'the ')} was ready.`);
  s.say(`${hero.name} gave it to ${friend.name} the ${friend.kind}.`);
  s.say(`"${s.pick(['Thank you', 'Wow', 'Oh', 'How nice'])}! It is ${s.pick(['so pretty', 'so nice', 'the best', 'just what I wanted', 'lovely'])}," said ${friend.name}.`);
  ending(s, hero, friend);
}

function plotReach(s: Story, hero: Character): void {
  const food = s.pick(FOODS);
  intro(s, hero);
  s.say(`${hero.name} was ${s.pick(['hungry', 'very hungry', 'so hungry'])}.`);
  s.say(`${he(hero)} saw ${an(s.pick(['red', 'big', 'sweet', 'ripe', 'juicy', 'little', 'yellow']))} ${food} ${s.pick(['up in a tall tree', 'on a high shelf', 'on top of the wall', 'on the roof'])}.`);
  s.say(`but it was too high.`, `${hero.name} jumped and jumped, but ${he(hero)} could not reach it.`);
  const friend = s.character(hero);
  s.say(`then ${friend.name} the ${friend.kind} came along.`);
  s.say(
    s.pick([
      `${friend.name} was very tall, so ${he(friend)} got the ${food} for ${him(hero)}.`,
      `${friend.name} got a ladder and climbed up to get the ${food}.`,
      `"Stand on my back," said ${friend.name}. So ${hero.name} did, and ${he(hero)} got the ${food}.`,
    ]),
  );
  s.say(`${hero.name} and ${friend.name} shared the ${food}.`, `it was ${s.pick(['very good', 'sweet', 'yummy', 'so good'])}.`);
  ending(s, hero, friend);
}

function plotNight(s: Story, hero: Character): void {
  intro(s, hero);
  s.say(`${s.pick(['that night', 'one night', 'late at night'])}, ${hero.name} could not sleep.`);
  s.say(`${he(hero)} heard ${s.pick(SOUNDS)} ${s.pick(SOUND_WHERE)}.`);
  s.say(`${hero.name} was ${s.pick(['scared', 'a little scared', 'very scared', 'worried'])}.`);
  const friend = s.character(hero);
  s.say(`${he(hero)} ${s.pick(['got out of bed', 'took a lamp', 'held ' + his(hero) + ' blanket'])} and went to look.`);
  s.say(
    s.pick([
      `it was only ${friend.name} the ${friend.kind}!`,
      `it was just the wind.`,
      `it was only ${his(hero)} ${s.pick(FAMILY)} making a snack.`,
    ]),
  );
  s.say(`${hero.name} ${s.pick(['laughed', 'smiled', 'felt much better'])}.`);
  s.say(`then ${he(hero)} went back to bed and fell asleep.`);
  if (s.chance(0.3)) s.say('the end.');
}

function plotDay(s: Story, hero: Character): void {
  intro(s, hero);
  const acts = [s.pick(ACTIVITIES), s.pick(ACTIVITIES)];
  s.say(`${hero.name} wanted to ${acts[0].base}.`);
  s.say(`first, ${he(hero)} ${acts[0].past}.`);
  if (acts[1] !== acts[0]) s.say(`then ${he(hero)} ${acts[1].past}.`);
  s.say(`${s.pick(['after that', 'at lunch', 'later'])}, ${he(hero)} ate ${an(s.pick(FOODS))}.`);
  s.say(`${he(hero)} felt ${s.pick(['tired but happy', 'very happy', 'full and sleepy', 'glad'])}.`);
  ending(s, hero);
}

const PLOTS = [plotFound, plotLost, plotPlay, plotMake, plotReach, plotNight, plotDay];

/** One story (one paragraph, no trailing newline). */
export function generateStory(rng: Rng): string {
  const s = new Story(rng);
  const plot = PLOTS[rng.int(PLOTS.length)];
  plot(s, s.character());
  return s.text();
}

/** The whole quickstart corpus: stories separated by blank lines, ending in one "\n". */
export function generateQuickstart(opts: QuickstartOptions = {}): string {
  const seed = opts.seed ?? QUICKSTART_DEFAULTS.seed;
  const target = opts.targetChars ?? QUICKSTART_DEFAULTS.targetChars;
  const rng = new Rng(seed);
  const stories: string[] = [];
  let length = 0;
  while (length < target) {
    const story = generateStory(rng);
    stories.push(story);
    length += story.length + 2;
  }
  return stories.join('\n\n') + '\n';
}
