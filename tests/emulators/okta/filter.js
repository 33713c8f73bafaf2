'use strict';
// Parser/evaluator for the Okta Users API `filter` query parameter.
//
// Okta documents (listUsers, `filter`): properties status, lastUpdated, id,
// profile.login, profile.email, profile.firstName, profile.lastName; only `eq`,
// except lastUpdated which also takes gt, ge, lt, le; logical `and` / `or`
// (no `not`); parentheses. Property names and values are case sensitive,
// operators are not.

const PROPS = new Set(['status', 'lastUpdated', 'id', 'profile.login',
  'profile.email', 'profile.firstName', 'profile.lastName']);
const DATE_OPS = new Set(['eq', 'gt', 'ge', 'lt', 'le']);

class FilterError extends Error {}

function tokenize(s) {
  const out = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '+') { i++; continue; }
    if (c === '(' || c === ')') { out.push({ t: c }); i++; continue; }
    if (c === '"') {
      let j = i + 1, v = '';
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\' && j + 1 < s.length) { v += s[j + 1]; j += 2; continue; }
        v += s[j++];
      }
      if (j >= s.length) throw new FilterError('unterminated string');
      out.push({ t: 'str', v });
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < s.length && !' \t\n()"'.includes(s[j])) j++;
    if (j === i) throw new FilterError('unexpected character');
    out.push({ t: 'word', v: s.slice(i, j) });
    i = j;
  }
  return out;
}

function parse(s) {
  const toks = tokenize(s);
  let p = 0;
  const peek = () => toks[p];
  const isWord = (tok, w) => tok && tok.t === 'word' && tok.v.toLowerCase() === w;

  function primary() {
    const tok = peek();
    if (!tok) throw new FilterError('unexpected end');
    if (tok.t === '(') {
      p++;
      const e = orExpr();
      if (!peek() || peek().t !== ')') throw new FilterError('missing )');
      p++;
      return e;
    }
    if (tok.t !== 'word' || !PROPS.has(tok.v)) throw new FilterError('unsupported property');
    p++;
    const opTok = peek();
    if (!opTok || opTok.t !== 'word') throw new FilterError('missing operator');
    const op = opTok.v.toLowerCase();
    p++;
    if (tok.v === 'lastUpdated' ? !DATE_OPS.has(op) : op !== 'eq') throw new FilterError('unsupported operator');
    const val = peek();
    if (!val || val.t !== 'str') throw new FilterError('missing value');
    p++;
    let v = val.v;
    if (tok.v === 'lastUpdated') {
      v = Date.parse(val.v);
      if (Number.isNaN(v)) throw new FilterError('bad date');
    }
    return { prop: tok.v, op, v };
  }
  function andExpr() {
    let l = primary();
    while (isWord(peek(), 'and')) { p++; l = { and: [l, primary()] }; }
    return l;
  }
  function orExpr() {
    let l = andExpr();
    while (isWord(peek(), 'or')) { p++; l = { or: [l, andExpr()] }; }
    return l;
  }
  const e = orExpr();
  if (p !== toks.length) throw new FilterError('trailing tokens');
  return e;
}

function getProp(u, prop) {
  switch (prop) {
    case 'status': return u.status;
    case 'lastUpdated': return u.lastUpdated;
    case 'id': return u.id;
    default: return u.profile[prop.slice(8)];
  }
}

function evaluate(e, u) {
  if (e.and) return evaluate(e.and[0], u) && evaluate(e.and[1], u);
  if (e.or) return evaluate(e.or[0], u) || evaluate(e.or[1], u);
  const a = getProp(u, e.prop);
  if (e.prop === 'lastUpdated') {
    switch (e.op) {
      case 'eq': return a === e.v;
      case 'gt': return a > e.v;
      case 'ge': return a >= e.v;
      case 'lt': return a < e.v;
      case 'le': return a <= e.v;
    }
  }
  return a === e.v;
}

module.exports = { parse, evaluate, FilterError };
