import { Rng } from '../../util/rng.js';

/**
 * A grammar of short one-line reviews of meals, hotels, films and books, e.g.
 *
 *   Review: The soup was delicious and fresh. The waiter was friendly. I would come back.
 *
 * Every review opens with "Review: <opener> <subject> was|were" — the part RL
 * prompts are made of — and the first sentence's complement is the part SFT
 * responses are made of. Sentiment is carried by words that have an AFINN-165
 * valence (so the gold scorer agrees with the intended polarity: tests check that
 * every positive complement scores V > 0, every negative one V < 0 and every
 * neutral one V = 0); neutral complements use only words without a valence.
 */

export type Polarity = 'pos' | 'neg' | 'neu';
type Kind = 'food' | 'people' | 'place' | 'work';
type DomainName = 'meal' | 'hotel' | 'film' | 'book';

interface Subject {
  text: string;
  plural: boolean;
  kind: Kind;
}

interface Domain {
  name: DomainName;
  subjects: Subject[];
  /** Words before the subject in an opening ("The", "Our", "I thought the"). */
  openers: string[];
  closers: Record<Polarity, string[]>;
}

const s = (kind: Kind, ...texts: string[]): Subject[] => texts.map((text) => ({ text, plural: false, kind }));
const p = (kind: Kind, ...texts: string[]): Subject[] => texts.map((text) => ({ text, plural: true, kind }));

const SHARED_OPENERS = ['The', 'I thought the', 'I felt the', 'Overall, the', 'To me, the'];

const DOMAINS: readonly Domain[] = [
  {
    name: 'meal',
    subjects: [
      ...s('food', 'soup', 'pasta', 'pizza', 'salad', 'bread', 'coffee', 'tea', 'steak', 'fish', 'curry', 'cake', 'burger', 'dessert', 'wine', 'rice', 'pie', 'sauce', 'chicken', 'meal', 'food'),
      ...p('food', 'fries', 'noodles', 'chips', 'portions'),
      ...s('people', 'waiter', 'service', 'chef'),
      ...p('people', 'staff'),
      ...s('place', 'restaurant', 'table'),
    ],
    openers: [...SHARED_OPENERS, 'Our', 'My'],
    closers: {
      pos: ['I would come back.', 'We will be back.', 'Highly recommended.', 'Five stars.', 'We loved it.', 'A great place to eat.'],
      neg: ['I would not come back.', 'We will not be back.', 'Avoid this place.', 'One star.', 'What a waste of money.', 'Never again.'],
      neu: ['Three stars.', 'It was okay overall.', 'Nothing special.', 'About what I expected.', 'Maybe we will try it again.'],
    },
  },
  {
    name: 'hotel',
    subjects: [
      ...s('place', 'room', 'hotel', 'view', 'pool', 'shower', 'bathroom', 'location', 'balcony', 'garden', 'gym', 'bar'),
      ...p('place', 'rooms', 'beds', 'towels', 'pillows'),
      ...s('people', 'front desk', 'manager'),
      ...p('people', 'porters', 'cleaners'),
      ...s('food', 'breakfast'),
    ],
    openers: [...SHARED_OPENERS, 'Our', 'My'],
    closers: {
      pos: ['I would stay here again.', 'Highly recommended.', 'Five stars.', 'We loved our stay.', 'A great place to stay.'],
      neg: ['I would not stay here again.', 'Avoid this hotel.', 'One star.', 'What a waste of money.', 'Never again.'],
      neu: ['Three stars.', 'It was okay overall.', 'Nothing special.', 'About what I expected.', 'It was just a place to sleep.'],
    },
  },
  {
    name: 'film',
    subjects: [
      ...s('work', 'film', 'movie', 'plot', 'ending', 'acting', 'music', 'story', 'script', 'soundtrack', 'dialogue', 'sequel', 'opening scene', 'lead actor', 'cast', 'villain'),
      ...p('work', 'actors', 'effects', 'songs', 'scenes'),
    ],
    openers: SHARED_OPENERS,
    closers: {
      pos: ['I would watch it again.', 'Highly recommended.', 'Five stars.', 'I loved it.', 'Go and see it.'],
      neg: ['I would not watch it again.', 'Avoid this film.', 'One star.', 'What a waste of time.', 'Never again.'],
      neu: ['Three stars.', 'It was okay overall.', 'Nothing special.', 'About what I expected.', 'Maybe wait for it on TV.'],
    },
  },
  {
    name: 'book',
    subjects: [
      ...s('work', 'book', 'writing', 'prose', 'first chapter', 'last chapter', 'cover', 'main character', 'narrator', 'author', 'translation', 'style'),
      ...p('work', 'characters', 'chapters', 'poems'),
    ],
    openers: SHARED_OPENERS,
    closers: {
      pos: ['I would read it again.', 'Highly recommended.', 'Five stars.', 'I loved it.', 'Read it.'],
      neg: ['I would not read it again.', 'Avoid this book.', 'One star.', 'What a waste of time.', 'Never again.'],
      neu: ['Three stars.', 'It was okay overall.', 'Nothing special.', 'About what I expected.', 'Maybe read it on a train.'],
    },
  },
];

/** Adjectives (or short predicate phrases) by kind of subject and polarity. */
const ADJ: Record<Kind, Record<Polarity, string[]>> = {
  food: {
    pos: ['delicious', 'fresh', 'sweet', 'tender', 'perfect', 'excellent', 'superb', 'lovely'],
    neg: ['awful', 'disgusting', 'nasty', 'undercooked', 'horrible', 'dreadful', 'bad'],
    neu: ['hot', 'cold', 'plain', 'simple', 'salty', 'spicy', 'served with rice', 'served on a small plate', 'quite filling', 'a little salty', 'mild'],
  },
  people: {
    pos: ['friendly', 'polite', 'helpful', 'kind', 'pleasant', 'lovely', 'wonderful'],
    neg: ['rude', 'useless', 'careless', 'lazy', 'hostile', 'arrogant', 'incompetent'],
    neu: ['busy', 'quiet', 'young', 'new', 'very busy', 'at the door', 'in a hurry', 'from the city'],
  },
  place: {
    pos: ['clean', 'spotless', 'comfortable', 'spacious', 'peaceful', 'beautiful', 'stunning', 'elegant', 'charming', 'lovely'],
    neg: ['dirty', 'filthy', 'noisy', 'uncomfortable', 'ugly', 'stinky', 'broken', 'a mess', 'horrible'],
    neu: ['small', 'large', 'quiet', 'modern', 'old', 'on the second floor', 'near the station', 'next to the lift', 'by the street', 'painted white'],
  },
  work: {
    pos: ['brilliant', 'exciting', 'gripping', 'clever', 'funny', 'charming', 'beautiful', 'memorable', 'heartwarming', 'a masterpiece', 'delightful', 'enjoyable', 'outstanding'],
    neg: ['boring', 'dull', 'confusing', 'pointless', 'stupid', 'lame', 'weak', 'forgettable', 'silly', 'a mess', 'dreadful'],
    neu: ['long', 'short', 'simple', 'slow', 'quiet', 'set in a small town', 'told in three parts', 'mostly about a family', 'longer than I expected', 'in the usual style', 'similar to most others'],
  },
};

/** Valenced words that fit any subject. */
const GENERIC: Record<Polarity, string[]> = {
  pos: ['good', 'great', 'excellent', 'wonderful', 'amazing', 'fantastic', 'perfect', 'nice', 'superb'],
  neg: ['bad', 'terrible', 'awful', 'horrible', 'poor', 'disappointing'],
  neu: ['okay', 'average', 'standard', 'ordinary', 'normal', 'about what I expected', 'as usual'],
};

/** Positive words that read naturally after "not very" (a negative complement: V = -0.5 x valence). */
const NEGATABLE = ['good', 'nice', 'clean', 'friendly', 'helpful', 'exciting', 'fresh', 'comfortable', 'clever', 'funny'];

const INTENSIFIERS = ['very', 'really', 'so', 'quite', 'truly'];

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

function chance(rng: Rng, prob: number): boolean {
  return rng.next() < prob;
}

/** One adjective of the given polarity for a subject: kind-specific two times in three. */
function adjective(rng: Rng, kind: Kind, pol: Polarity): string {
  return chance(rng, 2 / 3) ? pick(rng, ADJ[kind][pol]) : pick(rng, GENERIC[pol]);
}

const isPhrase = (a: string): boolean => a.includes(' ');

/** Two different adjectives of a polarity. */
function twoAdjectives(rng: Rng, kind: Kind, pol: Polarity): [string, string] {
  const a = adjective(rng, kind, pol);
  for (;;) {
    const b = adjective(rng, kind, pol);
    if (b !== a) return [a, b];
  }
}

function otherSubject(rng: Rng, domain: Domain, subject: Subject): Subject {
  for (;;) {
    const o = pick(rng, domain.subjects);
    if (o.text !== subject.text) return o;
  }
}

const be = (sub: Subject): string => (sub.plural ? 'were' : 'was');

/**
 * The complement of "<subject> was": what the first sentence says, without the full stop.
 * 'neu' covers both plain neutral statements and mixed ones ("good, but the bread was stale").
 */
function complement(rng: Rng, domain: Domain, subject: Subject, pol: Polarity): string {
  const kind = subject.kind;
  const r = rng.next();
  if (pol === 'neu') {
    if (r < 0.3) {
      // mixed: one good and one bad thing
      const other = otherSubject(rng, domain, subject);
      const first: Polarity = chance(rng, 0.5) ? 'pos' : 'neg';
      const second: Polarity = first === 'pos' ? 'neg' : 'pos';
      return `${adjective(rng, kind, first)}, but the ${other.text} ${be(other)} ${adjective(rng, other.kind, second)}`;
    }
    if (r < 0.55) {
      const [a, b] = twoAdjectives(rng, kind, 'neu');
      return `${a} and ${b}`;
    }
    if (r < 0.7) {
      const other = otherSubject(rng, domain, subject);
      return `${adjective(rng, kind, 'neu')}, and the ${other.text} ${be(other)} ${adjective(rng, other.kind, 'neu')}`;
    }
    return adjective(rng, kind, 'neu');
  }
  if (pol === 'neg' && r < 0.12) return `not very ${pick(rng, NEGATABLE)}`;
  if (r < 0.35) {
    const a = adjective(rng, kind, pol);
    return isPhrase(a) ? a : `${pick(rng, INTENSIFIERS)} ${a}`;
  }
  if (r < 0.6) {
    const [a, b] = twoAdjectives(rng, kind, pol);
    return `${a} and ${b}`;
  }
  if (r < 0.8) {
    const other = otherSubject(rng, domain, subject);
    return `${adjective(rng, kind, pol)}, and the ${other.text} ${be(other)} ${adjective(rng, other.kind, pol)}`;
  }
  return adjective(rng, kind, pol);
}

export interface Opening {
  /** "Review: The soup was" (no trailing space: a response starts with one). */
  prompt: string;
  domain: Domain;
  subject: Subject;
}

/** Every distinct review opening, in a fixed order. */
export function allOpenings(): Opening[] {
  const out: Opening[] = [];
  const seen = new Set<string>();
  for (const domain of DOMAINS) {
    for (const subject of domain.subjects) {
      for (const opener of domain.openers) {
        const prompt = `Review: ${opener} ${subject.text} ${be(subject)}`;
        if (seen.has(prompt)) continue; // "staff", "story", "ending" and "plot" occur in two domains
        seen.add(prompt);
        out.push({ prompt, domain, subject });
      }
    }
  }
  return out;
}

/** The SFT response for an opening: " <complement>." */
export function firstSentenceEnd(rng: Rng, opening: Opening, pol: Polarity): string {
  return ` ${complement(rng, opening.domain, opening.subject, pol)}.`;
}

/** One whole review line (without the newline). */
export function review(rng: Rng, opening: Opening, pol: Polarity): string {
  const parts = [opening.prompt + firstSentenceEnd(rng, opening, pol)];
  const extra = rng.int(3); // 0-2 more sentences about other aspects
  let last: Subject = opening.subject;
  for (let i = 0; i < extra; i++) {
    const other = otherSubject(rng, opening.domain, last);
    const pol2: Polarity = chance(rng, 0.8) ? pol : pick(rng, ['pos', 'neg', 'neu'] as const);
    parts.push(`The ${other.text} ${be(other)} ${complement(rng, opening.domain, other, pol2)}.`);
    last = other;
  }
  if (chance(rng, 0.7)) parts.push(pick(rng, opening.domain.closers[pol]));
  return parts.join(' ');
}

/** Helpers exposed for tests: every complement phrase of each polarity the grammar can produce as a single adjective. */
export function adjectivesByPolarity(): Record<Polarity, string[]> {
  const out: Record<Polarity, string[]> = { pos: [...GENERIC.pos], neg: [...GENERIC.neg], neu: [...GENERIC.neu] };
  for (const kind of Object.keys(ADJ) as Kind[]) {
    for (const pol of ['pos', 'neg', 'neu'] as const) out[pol].push(...ADJ[kind][pol]);
  }
  out.neg.push(...NEGATABLE.map((w) => `not very ${w}`));
  for (const pol of ['pos', 'neg', 'neu'] as const) out[pol] = [...new Set(out[pol])];
  return out;
}

export { pick, chance };
