/** What a template value refers to, and placeholders for references to resources not deployed locally. */
import type { Json } from './shapes.ts';

/** The logical id a `Fn::GetAtt` value points at. */
export function getAttTarget(value: Json | undefined): string | undefined {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const att = value['Fn::GetAtt'];
    if (Array.isArray(att) && typeof att[0] === 'string') return att[0];
  }
  return undefined;
}

/** Logical ids a value refers to with Ref, Fn::GetAtt or ${Id} / ${Id.Attr} inside Fn::Sub. */
export function referencedIds(value: Json): string[] {
  const out: string[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (k === 'Ref' && typeof inner === 'string' && !inner.startsWith('AWS::')) out.push(inner);
        else if (k === 'Fn::GetAtt' && Array.isArray(inner) && typeof inner[0] === 'string') out.push(inner[0]);
        else if (k === 'Fn::Sub') {
          const text = Array.isArray(inner) ? inner[0] : inner;
          if (typeof text === 'string') for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}/g)) out.push(m[1]!);
          if (Array.isArray(inner)) walk(inner[1] ?? null);
        } else walk(inner);
      }
    }
  };
  walk(value);
  return out;
}

const PSEUDO = 'arn:${AWS::Partition}';
/** A syntactically valid ARN (or name, for a Ref) for a resource that is not deployed locally. */
function placeholder(type: string, id: string, stackName: string, attr: string | undefined): string {
  const name = `${stackName}-${id}`.slice(0, 64);
  switch (type) {
    case 'AWS::Lambda::Function':
      return attr ? `${PSEUDO}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${name}` : name;
    case 'AWS::IAM::Role':
      return attr === 'Arn' ? `${PSEUDO}:iam::\${AWS::AccountId}:role/${name}` : name;
    case 'AWS::SNS::Topic':
      return `${PSEUDO}:sns:\${AWS::Region}:\${AWS::AccountId}:${name}`;
    case 'AWS::KMS::Key':
      return attr === 'Arn' ? `${PSEUDO}:kms:\${AWS::Region}:\${AWS::AccountId}:key/${name}` : name;
    case 'AWS::Logs::LogGroup':
      return attr ? `${PSEUDO}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:${name}:*` : name;
    default: {
      const service = type.split('::')[1]?.toLowerCase() ?? 'local';
      return attr ? `${PSEUDO}:${service}:\${AWS::Region}:\${AWS::AccountId}:${name}/${attr}` : name;
    }
  }
}

/** The value with every reference to a removed resource replaced by its placeholder. */
export function replaceRemoved(value: Json, removed: ReadonlyMap<string, string>, stackName: string): Json {
  if (Array.isArray(value)) return value.map((v) => replaceRemoved(v, removed, stackName));
  if (!value || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const ref = value.Ref;
    if (typeof ref === 'string' && removed.has(ref)) {
      const text = placeholder(removed.get(ref)!, ref, stackName, undefined);
      return text.includes('${') ? { 'Fn::Sub': text } : text;
    }
    const att = value['Fn::GetAtt'];
    if (Array.isArray(att) && typeof att[0] === 'string' && removed.has(att[0])) {
      const text = placeholder(removed.get(att[0])!, att[0], stackName, String(att[1] ?? 'Arn'));
      return text.includes('${') ? { 'Fn::Sub': text } : text;
    }
    const sub = value['Fn::Sub'];
    if (typeof sub === 'string' || Array.isArray(sub)) {
      const text = Array.isArray(sub) ? sub[0] : sub;
      if (typeof text === 'string') {
        const replaced = text.replace(/\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}/g, (whole, id: string, attr: string | undefined) =>
          removed.has(id) ? placeholder(removed.get(id)!, id, stackName, attr) : whole,
        );
        const vars = Array.isArray(sub) ? replaceRemoved(sub[1] ?? {}, removed, stackName) : undefined;
        return { 'Fn::Sub': vars === undefined ? replaced : [replaced, vars] };
      }
    }
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceRemoved(v, removed, stackName)]));
}
