import { HttpProblem } from './problem.ts';

export type Format = 'json' | 'csv';

interface MediaRange {
  type: string;
  q: number;
}

function parseAccept(accept: string): MediaRange[] {
  return accept
    .split(',')
    .map((part) => {
      const [type = '', ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      const qv = q ? Number(q.slice(2)) : 1;
      return { type: type.trim().toLowerCase(), q: Number.isFinite(qv) ? qv : 0 };
    })
    .filter((m) => m.type !== '' && m.q > 0);
}

/**
 * JSON unless the client asks for CSV, by `format=csv` (wins over the header, so a plain URL
 * works in pandas) or by `Accept: text/csv` ranked above JSON.
 */
export function negotiateFormat(format: Format | undefined, accept: string | undefined, csvAllowed: boolean): Format {
  if (format === 'csv' && !csvAllowed) {
    throw new HttpProblem(400, 'format=csv is not available for this endpoint; it answers in JSON only', { parameter: 'format' });
  }
  if (format) return format;
  if (!accept) return 'json';
  const ranges = parseAccept(accept);
  if (ranges.length === 0) return 'json';
  const score = (t: string) => {
    let best = -1;
    for (const r of ranges) {
      const [major] = t.split('/');
      if (r.type === t || r.type === '*/*' || r.type === `${major}/*`) best = Math.max(best, r.q + (r.type === t ? 0.0001 : 0));
    }
    return best;
  };
  const json = Math.max(score('application/json'), score('application/problem+json'));
  const csv = csvAllowed ? score('text/csv') : -1;
  if (csv > json) return 'csv';
  if (json >= 0) return 'json';
  throw new HttpProblem(406, `cannot answer with ${accept}; this endpoint produces application/json${csvAllowed ? ' or text/csv' : ''}`, {
    parameter: 'Accept',
  });
}
