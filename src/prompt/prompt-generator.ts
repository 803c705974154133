/**
 * Renders the prompt for one iteration from a template. Placeholders: `{{context}}`, `{{iteration}}`,
 * `{{status_instructions}}`. The status line is how the agent says it believes the task is finished; the
 * DecisionEngine still checks that claim against the acceptance checks.
 */
export const DEFAULT_TEMPLATE = `You are working on a task supervised by Obra (iteration {{iteration}}).

{{context}}

{{status_instructions}}`;

export const STATUS_INSTRUCTIONS =
  'Do the work in the current directory. When you finish, summarise what you changed and how you verified it. ' +
  'End your answer with exactly one line: `STATUS: DONE` if the whole task is complete and verified, ' +
  'or `STATUS: CONTINUE` if more work is needed.';

export class PromptGenerator {
  constructor(private readonly template: string = DEFAULT_TEMPLATE) {
    for (const required of ['{{context}}']) {
      if (!template.includes(required)) throw new Error(`the prompt template must contain ${required}`);
    }
  }

  render(values: { context: string; iteration: number }): string {
    return this.template
      .replaceAll('{{context}}', values.context)
      .replaceAll('{{iteration}}', String(values.iteration))
      .replaceAll('{{status_instructions}}', STATUS_INSTRUCTIONS);
  }
}
