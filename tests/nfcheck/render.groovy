// Render process `script:`/`stub:` blocks the way Nextflow evaluates them: the block is Groovy code
// whose last expression is the command string. Reads one JSON case per line on stdin:
//   { "code": str, "vals": {name: value}, "paths": {name: str | [str]}, "task": {...}, ... }
// and answers one JSON line {"text": rendered} or {"error": message} per case. Single path inputs
// are bound as java.nio Paths and multi-file inputs as a list that prints space-separated, as
// Nextflow's staged inputs do.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Paths

class BlankSeparatedList extends ArrayList {
    BlankSeparatedList(Collection items) { super(items) }
    String toString() { join(' ') }
}

def slurper = new JsonSlurper()
def reader = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
String line
while ((line = reader.readLine()) != null) {
    def c = slurper.parseText(line)
    def binding = new Binding()
    c.vals.each { k, v -> binding.setVariable(k, v) }
    c.paths.each { k, v ->
        binding.setVariable(k, v instanceof List ? new BlankSeparatedList(v.collect { Paths.get(it) }) : Paths.get(v))
    }
    binding.setVariable('task', c.task)
    binding.setVariable('projectDir', c.projectDir)
    binding.setVariable('moduleDir', c.moduleDir)
    def answer
    try {
        answer = [text: new GroovyShell(binding).evaluate(c.code).toString()]
    } catch (Throwable e) {
        answer = [error: "${e.class.simpleName}: ${e.message}".toString()]
    }
    System.out.println(JsonOutput.toJson(answer))
    System.out.flush()
}
