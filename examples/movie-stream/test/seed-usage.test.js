// @ts-check
// Type-checks the design note's usage (seed-usage.ts) with the example's tsconfig: the note's
// calls must compile against kafka-napi's and the app's types, and its misuses must not.
const path = require('node:path');
const ts = require('typescript');

const PROJECT = path.join(__dirname, '..', 'tsconfig.json');
const SEED = path.join(__dirname, 'seed-usage.ts');
const EXPECT_ERROR = /^\s*\/\/ @ts-expect-error\b.*$/gm;

jest.setTimeout(60000);

/** @param {readonly import('typescript').Diagnostic[]} diagnostics */
function formatDiagnostics(diagnostics) {
  return diagnostics.map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (!diagnostic.file || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return `${path.relative(path.dirname(PROJECT), diagnostic.file.fileName)}:${line + 1}: ${message}`;
  });
}

function parseProject() {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    PROJECT,
    { noEmit: true },
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(formatDiagnostics([diagnostic]).join('\n'));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${PROJECT}`);
  return parsed;
}

/** @type {import('typescript').Program | undefined} */
let projectProgram;

test('the note’s usage compiles, and every misuse in it is a type error', () => {
  const parsed = parseProject();
  expect(parsed.errors).toEqual([]);
  expect(parsed.fileNames.map((file) => path.resolve(file))).toContain(SEED);
  projectProgram = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
  // An unused @ts-expect-error is itself an error, so this also fails when a misuse starts compiling.
  expect(formatDiagnostics(ts.getPreEmitDiagnostics(projectProgram))).toEqual([]);
});

test('without its @ts-expect-error lines, each misuse fails on the line after its directive', () => {
  const parsed = parseProject();
  const original = ts.sys.readFile(SEED) ?? '';
  const directiveLines = [...original.matchAll(EXPECT_ERROR)].map(
    (match) => original.slice(0, match.index).split('\n').length,
  );
  expect(directiveLines.length).toBeGreaterThanOrEqual(8);
  // Blank the directives in place, so line numbers stay put.
  const stripped = original.replace(EXPECT_ERROR, '');

  const host = ts.createCompilerHost(parsed.options);
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    path.resolve(fileName) === SEED
      ? ts.createSourceFile(fileName, stripped, languageVersion, true)
      : getSourceFile.call(host, fileName, languageVersion, ...rest);
  const program = ts.createProgram({
    rootNames: [SEED],
    options: parsed.options,
    host,
    oldProgram: projectProgram,
  });
  const errors = ts.getPreEmitDiagnostics(program);
  const errorLines = new Set(
    errors
      .filter((diagnostic) => diagnostic.file && path.resolve(diagnostic.file.fileName) === SEED)
      .map((diagnostic) => {
        const { file, start } = diagnostic;
        return file && start !== undefined ? file.getLineAndCharacterOfPosition(start).line + 1 : 0;
      }),
  );
  expect(formatDiagnostics(errors).filter((line) => !line.startsWith('test/seed-usage.ts'))).toEqual([]);
  expect([...errorLines].sort((a, b) => a - b)).toEqual(directiveLines.map((line) => line + 1));
});
