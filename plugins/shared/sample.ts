/**
 * Sample values for checking request templates before any run (`TemplateRenderer.check`): a
 * record whose members that the mapping does not have are errors, as a typo would be.
 */

/** A record with one sample value per mapped field (by its warehouse type, when known); any other member is an error. */
export function sampleRecord(fields: string[], fieldTypes: Record<string, string> = {}): Record<string, unknown> {
  return strict(Object.fromEntries(fields.map((f) => [f, sampleValue(fieldTypes[f])])), 'record');
}

/** `value`, whose members that it does not have are errors (`undefined variable "record.emial"`). */
export function strict<T extends object>(value: T, name: string): T {
  return new Proxy(value, {
    get(target, member, receiver) {
      // JSON.stringify asks every object for toJSON; symbols and inherited members are not data.
      if (typeof member === 'symbol' || member in target || member === 'toJSON') return Reflect.get(target, member, receiver) as unknown;
      throw new Error(`undefined variable "${name}.${member}"`);
    },
  });
}

/** A sample value of a warehouse type. */
function sampleValue(type: string | undefined): unknown {
  if (type === undefined) return 'sample';
  if (/^BOOL/i.test(type)) return true;
  if (/INT|DECIMAL|NUMERIC|NUMBER|DOUBLE|FLOAT|REAL/i.test(type)) return 1;
  return 'sample';
}
